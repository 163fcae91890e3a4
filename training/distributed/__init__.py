"""One training run across several processes: torchrun starts them, TorchRec's DistributedModelParallel shards
the embedding tables under a plan from its EmbeddingShardingPlanner, the dense part is data-parallel, and the
trained state is gathered into the registry's usual artifacts (docs/training.md, "Distributed training")."""
