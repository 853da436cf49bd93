"""Using a model, without TensorFlow: next-token choice (`sampling`), the
request (`request`), the `Generator` (`generate`), token log-probabilities
(`logprobs`), held-out scoring (`evaluate`) and perplexity (`perplexity`)."""
