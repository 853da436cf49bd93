"""The model file: its configuration (`config`), the Keras network
(`network`, `cells`: the only modules here that import Keras, and only when
training), the file read without Keras (`file`, every member checked as
untrusted input), the training record (`record`), the NumPy decoder
(`decoder`), the n-gram memory (`ngram`, counted by `counting`) and the
training text's fingerprints (`originality`, `novelty`)."""
