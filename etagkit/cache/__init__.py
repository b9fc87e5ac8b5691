"""Tagged cache-aside: TagCache in front of a MemoryStore or RedisStore."""
