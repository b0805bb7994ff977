// Package metrics reads a benchmark job's logs and judges them: it extracts the default
// and custom performance metrics, reads the benchmark client's result blocks and
// result.json files, applies the validity gate, and gives accuracy verdicts from lm_eval
// tables. It also translates extractor patterns written for Python's re module.
//
// The rules, in short:
//
//   - A result block belongs to concurrency N when it lies between "Benchmarking with
//     concurrency N" and "Benchmark with concurrency N done"; the last block there is the
//     result and earlier ones, like blocks outside any such pair, are warmups. Rows carry
//     the configured concurrency: the printed N divided by num_gen_servers.
//   - A perf result is valid when every configured concurrency has a closed block
//     followed by its done line, no failed requests (Input.MaxFailedRequests), more than
//     zero generated tokens, successful requests equal to the total (or to the announced
//     prompt count), every default metric printed and finite, and any
//     concurrency_<c>/result.json agreeing with the log. Each failure is one reason.
//   - A job whose final state is not COMPLETED is partial and not valid, and still
//     records the concurrencies it finished.
//   - Accuracy values, expected values and thresholds are fractions, as lm_eval prints
//     exact_match; sigma is in percentage points, as the seed's defaults write it.
//
// The package depends on the standard library only; pkg/config imports it to check
// patterns at validation time.
package metrics
