"""Small geodesy helpers on numpy arrays (spherical Earth; geopy for the geodesic estimates)."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6371008.8


def haversine_m(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in metres (vectorised)."""
    p1 = np.radians(lat1)
    p2 = np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on a sphere of radius ``EARTH_RADIUS_M`` (chord length is monotone in arc length)."""
    p = np.radians(np.asarray(lat, np.float64))
    q = np.radians(np.asarray(lon, np.float64))
    c = np.cos(p)
    return np.column_stack((c * np.cos(q), c * np.sin(q), np.sin(p))) * EARTH_RADIUS_M


def chord_to_arc_m(chord: np.ndarray | float) -> np.ndarray:
    """Arc length in metres for a chord length in metres."""
    ratio = np.clip(np.asarray(chord, np.float64) / (2 * EARTH_RADIUS_M), 0.0, 1.0)
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(ratio))
