import Diagnostics

/// What the engine refuses to run, each naming what was wrong and where. All are bad input
/// (exit status 1).
public enum EngineError: DiagnosticError {
    /// config.json lacks a value, or has one the engine does not implement.
    case config(path: String, String)
    /// A tensor is missing, has the wrong shape or an encoding the engine cannot run; `file` is
    /// the file holding it (the store's location when it is missing).
    case tensor(name: String, file: String? = nil, String)
    /// Token ids or prompt the model cannot take; `file` is the ids file when there is one.
    case input(String, file: String? = nil)

    public var category: ErrorCategory { .input }

    public var code: String {
        switch self {
        case .config: return "engine.config"
        case .tensor: return "engine.tensor"
        case .input: return "engine.input"
        }
    }

    public var file: String? {
        switch self {
        case let .config(path, _): return path
        case let .tensor(_, file, _), let .input(_, file): return file
        }
    }

    public var tensor: String? {
        if case let .tensor(name, _, _) = self { return name }
        return nil
    }

    public var message: String {
        switch self {
        case let .config(_, m), let .tensor(_, _, m), let .input(m, _): return m
        }
    }

    /// The same error located in `file` (an input error from the ids in that file).
    public func located(in file: String) -> EngineError {
        if case let .input(m, nil) = self { return .input(m, file: file) }
        return self
    }
}
