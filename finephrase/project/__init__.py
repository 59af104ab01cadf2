"""The project files finephrase ships (prompts, sbatch scripts, pipeline definitions, the sample): where they are
(`bundled.py`: the checkout's folders or the wheel's copies), and `finephrase init DIR` (`scaffold.py`)."""
