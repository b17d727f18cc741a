"""Ranking data and its checks, shared by training and evaluation: interactions, splits with a
leakage guard, full-ranking metrics, the evaluation protocol and the ``Recommender`` contract."""
