// Package metrics reads a benchmark job's logs and judges them: it extracts the default
// and custom performance metrics, reads the benchmark client's result blocks and
// result.json files, applies the validity gate, and gives accuracy verdicts from lm_eval
// tables. It also translates extractor patterns written for Python's re module.
//
// The package depends on the standard library only; pkg/config imports it to check
// patterns at validation time.
package metrics
