"""Write CLINC150 utterances as call turns: one JSONL line per turn with id, utterance and label.

    python examples/clinc_turns.py --split test --output .demo/clinc150_test.jsonl

``--split test`` is the 4,500 in-scope test turns plus the 1,000 out-of-scope ones (label ``oos``);
``val`` likewise. The ``label`` field lets ``orchestrator run`` report accuracy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skills.data import clinc150_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N turns")
    args = parser.parse_args()
    turns = clinc150_eval(args.split)[: args.limit]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as out:
        for n, (text, intent) in enumerate(turns):
            line = {"id": f"{args.split}-{n:05d}", "utterance": text, "label": intent}
            out.write(json.dumps(line) + "\n")
    print(f"wrote {len(turns)} turns to {args.output}")


if __name__ == "__main__":
    main()
