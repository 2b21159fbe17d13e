public enum CollectorsModule {}
