"""Attribution (issue 22): every served answer is recorded, and feedback events that carry its
`recommendation_id` are joined to it.

- `record`: the hot path. One XADD per served answer to a bounded Redis stream (`stream`), never a
  database write.
- `store`: a worker's batches from the stream into `recs_servedanswer` (consumer group, acknowledged after
  the commit).
- `stats`: per (variant, endpoint), the sufficient statistics of the experiments package, computed by SQL
  aggregates over served answers and their attributed events.
- `erase`: a customer's or a shop's served answers, with the rest of their data (the right to erasure).

docs/serving.md ("Recording served answers") says what a crash or an outage can lose.
"""
