"""Can the model use in-context examples (what Dynamic Cheatsheet's example memory
relies on)? Each held-out problem is prompted plain and with ``--examples``
reference-solved problems of the same level prepended (the best case for a
memory: correct, same-kind solutions); compares pass@1, the share of samples
that end with an answer line, and the share whose steps are all valid.
Results: benchmarks/results/learn_incontext.json.
"""

from __future__ import annotations

import torch
from learn_common import parser, write

from testtime.learn.common import TEST_SEED, TRAIN_SEED, make_problems, parse_split
from testtime.learn.policy import Policy
from testtime.scale.common import derive_seed
from testtime.tasks import get_task


def main() -> None:
    p = parser(__doc__, split="2-4", problems=32)
    p.add_argument("--examples", type=int, default=2)
    p.add_argument("--samples", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    policy = Policy(args.model)
    problems = make_problems(task, parse_split(args.split), args.problems, TEST_SEED)
    contexts = []
    for i, prob in enumerate(problems):
        shots = task.generate(args.examples, prob.difficulty, TRAIN_SEED + i)
        contexts.append("".join(s.prompt + task.solve(s) for s in shots))
    result = {}
    for name, prefix in (("plain", [""] * len(problems)), ("with_examples", contexts)):
        texts = policy.sample_texts([c + q.prompt for c, q in zip(prefix, problems, strict=True)],
                                    args.samples, temperature=1.0, max_tokens=160,
                                    seed=derive_seed(args.seed, "incontext"))
        flat = [(q, t) for q, row in zip(problems, texts, strict=True) for t in row]
        result[name] = {
            "pass@1": sum(task.is_correct(q, t) for q, t in flat) / len(flat),
            "answer_line": sum(task.extract_answer(t) is not None for q, t in flat) / len(flat),
            "all_steps_valid": sum(all(task.check_steps(q, t) or [False]) for q, t in flat) / len(flat),
        }
        print(name, result[name], flush=True)
    write(args, "learn_incontext.json", {"examples": args.examples, "samples": args.samples, **result})


if __name__ == "__main__":
    main()
