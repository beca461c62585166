"""What the shipped PRM reads and where it is scored: the format shared by its
training (:mod:`testtime.zoo.reasoner_prm`) and the verifier that serves it
(:mod:`testtime.verifiers.prm`). It lives in the zoo, the lower layer, so the
verifier imports the zoo and never the other way round."""

from __future__ import annotations

from testtime.tasks.base import ANSWER_PREFIX, STEP_DELIMITER


def scored_positions(prompt_ids: int, solution: str) -> tuple[str, list[int]]:
    """(text to score, token positions of the step-ending newlines).

    Positions count the ``<bos>`` and ``prompt_ids`` prompt tokens (the tokenizer
    is one token per character). Scored lines: each reasoning line, then the
    first answer line if there is one; a missing final newline is added.
    """
    if solution and not solution.endswith(STEP_DELIMITER):
        solution += STEP_DELIMITER
    positions, offset = [], prompt_ids
    for line in solution.split(STEP_DELIMITER)[:-1]:
        end = offset + len(line)  # index of this line's newline
        offset = end + 1
        if not line.strip():
            continue
        positions.append(end)
        if line.strip().startswith(ANSWER_PREFIX):
            break
    return solution, positions
