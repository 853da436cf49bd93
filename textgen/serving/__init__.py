"""`textgen serve`: the OpenAI-compatible HTTP app (`app`), the
continuous-batching engine (`engine`), connection limits (`connections`),
`/metrics` (`monitoring`) and the playground page (`playground/`)."""
