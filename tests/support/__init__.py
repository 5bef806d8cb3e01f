"""What the tests share: keys and packages, a hub, a node in-process, a network of real
processes."""
