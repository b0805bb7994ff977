"""Times a seed-like loader on a config folder: yaml.safe_load of each
{type}/{category}/*.yaml, environment overrides on a deep copy, and the seed's
validation rules. For comparison with BenchmarkLoadValidate.

usage: python3 seed_loader.py DIR
"""
import copy
import os
import sys
import time
from pathlib import Path

import yaml


def validate(cfg):
    gen = cfg["worker_config"]["gen"]
    ctx = cfg["worker_config"]["ctx"]
    bench = cfg["benchmark"]
    mtp = (gen.get("speculative_config") or {}).get("num_nextn_predict_layers", 0)
    if mtp > 0:
        assert gen["max_num_tokens"] >= gen["max_batch_size"] * (mtp + 1)
    assert bench["streaming"]
    isl, osl = bench["input_length"], bench["output_length"]
    assert ctx["max_seq_len"] > isl and gen["max_seq_len"] > isl + osl
    conc = [int(c) for c in str(bench["concurrency_list"]).split()]
    assert conc
    limit = gen["max_batch_size"] * (gen["tensor_parallel_size"] if gen.get("enable_attention_dp") else 1)
    assert all(c <= limit for c in conc)


def load(path):
    with open(path) as f:
        data = yaml.safe_load(f)
    data = copy.deepcopy(data)
    for section, key, env in [("slurm", "partition", "SLURM_PARTITION"), ("slurm", "account", "SLURM_ACCOUNT"),
                              ("environment", "container_image", "CONTAINER_IMAGE")]:
        if section in data:
            data[section][key] = os.environ.get(env, data[section].get(key, ""))
    validate(data)
    return data


def main():
    root = Path(sys.argv[1])
    start = time.perf_counter()
    n = 0
    for type_dir in sorted(root.iterdir()):
        for cat_dir in sorted(type_dir.iterdir()):
            for f in sorted(cat_dir.glob("*.yaml")):
                load(f)
                n += 1
    dt = time.perf_counter() - start
    print(f"{n} configs in {dt:.2f} s ({dt / n * 1e9:.0f} ns/config), libyaml C loader available: {yaml.__with_libyaml__}")


if __name__ == "__main__":
    main()
