"""RemoveFilesForClusters: after MinhashDedupCluster (with `save_cluster_id`), an empty `RRRRRR.remove` file for
every task that has a `.clusters` file but nothing to remove.

MinhashDedupFilter passes a task's documents through untouched when the task has no `.remove` file, without
loading its cluster ids; a task whose documents are all the kept representatives of their clusters (e.g. the
originals, when their copies are in other files) would then not say which cluster its kept documents belong
to, and `duplicate_of` of their removed copies would stay unknown. With an empty `.remove` file the filter
loads the cluster ids and removes nothing."""

from __future__ import annotations

from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep


class RemoveFilesForClusters(PipelineStep):
    type = "🫂 - DEDUP"
    name = "🎯 empty .remove files"

    def __init__(self, folder):
        super().__init__()
        self.folder = get_datafolder(folder)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for name in self.folder.list_files(glob_pattern="*.clusters", recursive=False):
            remove = name.removesuffix(".clusters") + ".remove"
            if not self.folder.exists(remove):
                with self.folder.open(remove, "wb"):
                    pass
                self.stat_update("empty_remove_files")
