"""The teacher: YOLOv3-tiny converted from Darknet by FrameSieve's own converter, run in the cloud."""
