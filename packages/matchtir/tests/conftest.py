"""matchtir tests run one torch thread per process: on the shared 2-core box two threads were 10-20x slower."""

import torch

torch.set_num_threads(1)
