"""Figures for screens and reports (SPEC §9): per-campaign and per-activity counts and daily
series, computed set-wise in SQL (test participants excluded everywhere)."""
