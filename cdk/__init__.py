"""Baton's CDK for Terraform app: a platform stack and a handlers stack per environment."""
