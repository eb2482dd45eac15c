# rejected-by: kernel-present
"""No kernel at all: plain torch."""

import torch


def run(x, y):
    return torch.add(x, y)
