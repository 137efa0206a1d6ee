"""Synopsis data shared by the synopsis worker and its clients: requests, statuses, the queue, the object index."""
