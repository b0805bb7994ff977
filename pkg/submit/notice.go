package submit

// A Notice is what the submitter tells whoever shows its progress (Config.Notify): a run
// it starts, a logical batch it starts submitting, a job submitted, a test not submitted.
// How they are shown is the command's business.
type Notice interface{ notice() }

// RunAccepted: the first batch of a run has arrived.
type RunAccepted struct {
	RunID     string
	BatchSize int // jobs per logical batch; 0 means no limit
	Policy    string
	Tests     int
	Batches   int // logical batches of BatchSize jobs
}

// BatchStarted: the submitter starts on logical batch Batch, tests [From, To) of the run.
type BatchStarted struct {
	RunID    string
	Batch    int
	From, To int
}

// JobSubmitted: a test's job is at the scheduler. Pos counts from 1 within its logical
// batch of Of jobs.
type JobSubmitted struct {
	RunID, TestID, JobID string
	Pos, Of              int
}

// NotSubmitted: a test that will not be submitted, and why.
type NotSubmitted struct {
	RunID, TestID, Reason string
}

func (RunAccepted) notice()  {}
func (BatchStarted) notice() {}
func (JobSubmitted) notice() {}
func (NotSubmitted) notice() {}

func (s *Submitter) notify(n Notice) {
	if s.cfg.Notify != nil {
		s.cfg.Notify(n)
	}
}
