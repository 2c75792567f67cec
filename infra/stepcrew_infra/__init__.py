"""The stepcrew CDK app: one stack per stage, one construct module per concern (see stack.py)."""
