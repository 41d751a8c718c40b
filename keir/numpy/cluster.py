"""pykeops.numpy.cluster: the cluster helpers of block-sparse reductions, on NumPy arrays (keir.cluster)."""

from keir.cluster import (
    cluster_centroids,
    cluster_ranges,
    cluster_ranges_centroids,
    from_matrix,
    grid_cluster,
    sort_clusters,
    swap_axes,
)

__all__ = ["cluster_centroids", "cluster_ranges", "cluster_ranges_centroids", "from_matrix", "grid_cluster",
           "sort_clusters", "swap_axes"]
