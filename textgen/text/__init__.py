"""Text: files and folders read as a stream (`corpus`), tokens and the
token level (`tokens`), the vocabulary (`vocab`), and a corpus as int32 ids
(`ids`). No TensorFlow, nothing about models."""
