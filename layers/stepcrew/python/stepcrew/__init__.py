"""stepcrew: crews of LLM agents that run serverless on AWS (Lambda + Step Functions + DynamoDB)."""

__version__ = "0.1.0"
