import CCurl
import CCrypto
public enum PlatformModule {}
