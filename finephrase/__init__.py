"""finephrase: rephrase web text into structured pretraining data with small instruction LLMs."""

__version__ = "0.2.0"
