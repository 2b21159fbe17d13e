public enum OScamModule {}
