"""JSON Schemas and the OpenAPI document: data files the code loads (installed with it)."""
