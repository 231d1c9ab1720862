import SystemIO

public enum EngineDefaults {
    /// Every online core.
    public static var threads: Int { Sys.onlineProcessors }
}
