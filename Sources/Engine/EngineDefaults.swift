#if canImport(Glibc)
import Glibc
#endif

public enum EngineDefaults {
    /// Every online core.
    public static var threads: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
