import Diagnostics

/// What the engine refuses to run, each naming what was wrong and where. All are bad input
/// (exit status 1).
public enum EngineError: DiagnosticError {
    /// config.json lacks a value, or has one the engine does not implement.
    case config(path: String, String)
    /// A tensor is missing, has the wrong shape or an encoding the engine cannot run.
    case tensor(name: String, String)
    /// Token ids or prompt the model cannot take.
    case input(String)

    public var category: ErrorCategory { .input }

    public var code: String {
        switch self {
        case .config: return "engine.config"
        case .tensor: return "engine.tensor"
        case .input: return "engine.input"
        }
    }

    public var file: String? {
        if case let .config(path, _) = self { return path }
        return nil
    }

    public var tensor: String? {
        if case let .tensor(name, _) = self { return name }
        return nil
    }

    public var message: String {
        switch self {
        case let .config(_, m), let .tensor(_, m), let .input(m): return m
        }
    }
}
