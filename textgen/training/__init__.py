"""Training, with TensorFlow: `train()` (`train`) and its stages' helpers
(windows in `data`, the budget planner in `sizing` and `calibration`,
`callbacks`, `distribute`, the residual prior in `prior`, word vectors in
`embeddings`), `compare()`, `adapt()` (a new memory for a model, no
TensorFlow), and the learning-curve pictures (`plots`)."""
