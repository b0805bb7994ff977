// Package config owns the test configs: the YAML schema (one file per test, as the
// seed framework writes them), strict decoding with the line and column of every
// problem, discovery under test_configs/{type}/{category}/, defaults and overrides,
// validation, GPU filtering, test ids, test lists and pytest-style -k / -m selection,
// and the planner's offline commands (validate, list, config show).
//
// # Precedence
//
// Every setting resolves the same way: command-line flag > environment > file >
// default. Flags are passed as an Env keyed by the environment variable they stand for
// (Selection.Flags, or the flags argument of Lookup and Test.Resolve); Test.Sources
// records, per field path, where each value that is not the file's came from.
//
// # Environment
//
// Config fields: SLURM_PARTITION (slurm.partition), SLURM_ACCOUNT (slurm.account),
// SLURM_JOB_NAME (slurm.job_name), CONTAINER_IMAGE and CONTAINER_MOUNT
// (environment.container_*), REPO_DIR (environment.trtllm_repo), TRTLLM_WHEEL_PATH
// (environment.trtllm_wheel_path), WORK_DIR (environment.work_dir), MODEL_DIR
// (environment.model_path = MODEL_DIR/metadata.model_dir_name), DATASET_DIR
// (benchmark.dataset_file = DATASET_DIR/metadata.dataset_file), HF_HOME_DIR
// (accuracy.env_var.HF_HOME). Empty values never override.
//
// Run settings, read with GPUType, OutputPath, BatchSize, DebugMode and Lookup:
// GPU_TYPE (default GB200; GB200_* counts as GB200), OUTPUT_PATH, DISAGG_BATCH_SIZE
// (default 5, 0 = all), DEBUG_MODE and DEBUG_JOB_ID, INSTALL_MODE.
//
// Unlike the seed framework, overrides apply only when set, a value from the
// environment that breaks a rule is reported against its field with its source, and
// nothing is ever dropped silently: a selected test is runnable, skipped with a reason,
// or invalid with its problems.
package config
