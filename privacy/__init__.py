"""Cross-shop learning under differential privacy (docs/privacy.md).

Shops that opt in contribute to noisy aggregates (popularity per normalised product key and per category);
no row of one shop is ever shown to another. Serving and training may use the released aggregates only
through `privacy.public`.
"""
