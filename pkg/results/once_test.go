package results

// One-test forms of the CSVAppender, as the tests use them.

// appendCSV appends rows to the CSV at path, creating it with the header if it is missing
// or empty. Nothing is written for no rows.
func appendCSV(path string, rows []Row, opts ...Option) error {
	if len(rows) == 0 {
		return nil
	}
	payload := encodeCSV(CSVRecords(rows))
	return withLock(path, func() error {
		_, err := appendLocked(path, payload, applyOptions(opts))
		return err
	})
}

// prepareCSV returns the claim to store before appending rows with appendCSVOnce.
func prepareCSV(path string, rows []Row) (CSVClaim, error) {
	return EncodeCSV(rows).claim(path, -1)
}

// appendCSVOnce appends rows unless claim shows they are already in the file, and returns
// the completed claim (Done, exact offset) and whether it wrote. claim is what prepareCSV
// returned (stored before the first attempt) or what an earlier appendCSVOnce returned.
//
// With a Done claim the bytes at its offset are compared; if they differ (the file was
// rebuilt), the whole file is searched. With a prepared claim the file is searched from
// the claim's offset on, at line starts, for exactly these bytes: an attempt that crashed
// after appending and before recording its claim is found there and not repeated.
func appendCSVOnce(path string, rows []Row, claim CSVClaim, opts ...Option) (CSVClaim, bool, error) {
	batch := []CSVAppend{{Payload: EncodeCSV(rows), Claim: claim}}
	if err := NewCSVAppender(path, opts...).AppendOnce(batch); err != nil {
		return claim, false, err
	}
	if batch[0].Err != nil {
		return claim, false, batch[0].Err
	}
	return batch[0].Done, batch[0].Wrote, nil
}
