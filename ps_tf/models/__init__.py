"""Models: the shared ResNet-50 trunk, the RetinaNet detection branch and the re-ID branch."""
