"""Model quality as the Code Llama paper measures it, on the runtime engine (no torch).

- :mod:`.fim_exec`: HumanEval-infilling with execution, pass@1 / pass@k, PSM and SPM.
- :mod:`.fim_tasks` and :mod:`.fim_match`: infilling tasks cut from any source tree,
  scored by exact match and edit similarity.
- :mod:`.key_retrieval` and :mod:`.perplexity`: long-context behaviour.
- :mod:`.completion`: HumanEval/MBPP-style prefix completion, pass@1.

Every run writes JSON, a markdown table and (where it helps) a PNG, with the model file's
sha256, the settings and the runtime version beside the scores (:mod:`.record`).
"""
