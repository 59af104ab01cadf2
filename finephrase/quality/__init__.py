"""Is a generation what its prompt asked for: the model's answer parsed out of its reply (`parsing.py`), the
format checks (`formats.py`), answers that are not answers (`nonanswer.py`), the gate that combines them per
prompt (`gate.py`), the grammars that constrain generation to a format (`constrain.py`), and the `finephrase gate`
command that re-checks published rows (`recheck/`). The pipeline's QualityFilter step calls `gate.py`.
"""
