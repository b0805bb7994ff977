package main

import "github.com/disaggbench/disaggbench/pkg/config"

func configDataset(name string, expected float64, sigma *float64) config.AccuracyDataset {
	return config.AccuracyDataset{DatasetName: name, ExpectedValue: expected, Sigma: sigma}
}
