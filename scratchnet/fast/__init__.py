"""What makes the layers' maths fast without changing it.

Nothing here computes a layer: ``gemm`` chooses how a matrix product is handed to BLAS,
``pair`` runs two halves of a step on two cores, ``step`` drives a network's layers through a
training step in those halves (or in chunks, for full-batch gradient descent), and ``threads``
decides how many BLAS threads run and which of two ways of using two cores a training run takes.
"""
