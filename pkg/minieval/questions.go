// Package minieval is a small stand-in for lm_eval's gsm8k task: a bundled set of grade
// school arithmetic questions, the emulated server's answers to them, and an evaluator
// that asks an OpenAI-compatible server each question, extracts the answer with
// gsm8k's two filters (strict-match: the number after "####"; flexible-extract: the
// last number) and prints lm_eval's results table, so an accuracy test's whole path
// (the job's lm_eval step, its log, the verdict) runs without a GPU or Python.
package minieval

import (
	"fmt"
	"strconv"
	"strings"
)

// Question is one item of the bundled set.
type Question struct {
	Text   string
	Target int
	// answer is the emulated server's reply: a worked solution ending "#### N".
	answer string
}

var names = []string{"Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo"}

// Questions is the bundled set: 40 questions from five templates.
var Questions = func() []Question {
	var qs []Question
	for i := range 8 {
		n := names[i]
		a, b, c := 12+i*7, 3+i, 4+i%5
		qs = append(qs,
			Question{Text: fmt.Sprintf("%s has %d apples and buys %d bags with %d apples each. How many apples does %s have now?", n, a, b, c, n), Target: a + b*c,
				answer: fmt.Sprintf("%s buys %d x %d = %d apples. %d + %d = %d.", n, b, c, b*c, a, b*c, a+b*c)},
			Question{Text: fmt.Sprintf("A shelf holds %d books. %s removes %d books and then adds %d more. How many books are on the shelf?", a*3, n, b*2, c), Target: a*3 - b*2 + c,
				answer: fmt.Sprintf("%d - %d = %d, and %d + %d = %d.", a*3, b*2, a*3-b*2, a*3-b*2, c, a*3-b*2+c)},
			Question{Text: fmt.Sprintf("%s earns $%d an hour and works %d hours a day for %d days. How many dollars does %s earn?", n, c+10, b, c+1, n), Target: (c + 10) * b * (c + 1),
				answer: fmt.Sprintf("Each day %s earns %d x %d = %d dollars. Over %d days that is %d x %d = %d.", n, c+10, b, (c+10)*b, c+1, (c+10)*b, c+1, (c+10)*b*(c+1))},
			Question{Text: fmt.Sprintf("%d students are split into groups of %d. Each group gets %d pencils. How many pencils are handed out?", b*c*2, c, a), Target: b * 2 * a,
				answer: fmt.Sprintf("There are %d / %d = %d groups. %d x %d = %d pencils.", b*c*2, c, b*2, b*2, a, b*2*a)},
			Question{Text: fmt.Sprintf("A train travels %d km in the morning and %d km in the afternoon on each of %d days. How many km does it travel?", a+40, a, b), Target: (2*a + 40) * b,
				answer: fmt.Sprintf("Each day it travels %d + %d = %d km. %d x %d = %d km.", a+40, a, 2*a+40, 2*a+40, b, (2*a+40)*b)},
		)
	}
	for i := range qs {
		q := &qs[i]
		switch i % 20 {
		case 7: // a wrong result, so the emulated score is not a perfect 1
			q.answer += fmt.Sprintf(" The answer is %d.\n#### %d", q.Target+1, q.Target+1)
		case 13: // the right result without the "####" line: only flexible-extract finds it
			q.answer += fmt.Sprintf(" The answer is %d.", q.Target)
		default:
			q.answer += fmt.Sprintf(" The answer is %d.\n#### %d", q.Target, q.Target)
		}
	}
	return qs
}()

var byText = func() map[string]*Question {
	m := make(map[string]*Question, len(Questions))
	for i := range Questions {
		m[Questions[i].Text] = &Questions[i]
	}
	return m
}()

// Prompt is the prompt the evaluator sends for a question.
func Prompt(q Question) string { return "Question: " + q.Text + "\nAnswer:" }

// Answer returns the emulated server's answer to a prompt whose last question is one
// of the bundled set.
func Answer(prompt string) (string, bool) {
	i := strings.LastIndex(prompt, "Question:")
	if i < 0 {
		return "", false
	}
	q := strings.TrimSpace(prompt[i+len("Question:"):])
	if j := strings.Index(q, "\nAnswer:"); j >= 0 {
		q = strings.TrimSpace(q[:j])
	}
	if found, ok := byText[q]; ok {
		return found.answer, true
	}
	return "", false
}

// Expected is the exact_match score the emulated server earns on the whole set, by
// filter: what a test of the evaluation path can assert.
func Expected() (flexible, strict float64) {
	var f, s int
	for _, q := range Questions {
		if extractFlexible(q.answer) == strconv.Itoa(q.Target) {
			f++
		}
		if extractStrict(q.answer) == strconv.Itoa(q.Target) {
			s++
		}
	}
	return float64(f) / float64(len(Questions)), float64(s) / float64(len(Questions))
}
