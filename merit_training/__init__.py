"""Building blocks of `train_merit.py`: arguments, data, checkpoints and Hub pushing."""
