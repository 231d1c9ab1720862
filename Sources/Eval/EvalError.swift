import Diagnostics

/// What `dsconvert eval` refuses, each naming what was wrong and where (the line of a JSONL file,
/// the two tokenizers). All are bad input (exit status 1).
public enum EvalError: DiagnosticError, Equatable {
    /// The text gives fewer ids than one window (two chunks for llama.cpp's scheme) needs.
    case textTooShort(tokens: Int, needed: Int, context: Int, scheme: EvalWindows.Scheme)
    /// A multiple-choice line that is not a valid item (1-based `line`).
    case invalidItem(file: String, line: Int, String)
    /// The candidate and the reference do not share one vocabulary and tokenizer.
    case tokenizerMismatch(String)
    /// A model or file eval cannot use (no tokenizer.json, a vocabulary the tokenizer exceeds).
    case input(file: String?, String)

    public var category: ErrorCategory { .input }

    public var code: String {
        switch self {
        case .textTooShort: return "eval.text_too_short"
        case .invalidItem: return "eval.invalid_item"
        case .tokenizerMismatch: return "eval.tokenizer_mismatch"
        case .input: return "eval.input"
        }
    }

    public var file: String? {
        switch self {
        case let .invalidItem(file, _, _): return file
        case let .input(file, _): return file
        default: return nil
        }
    }

    public var message: String {
        switch self {
        case let .textTooShort(tokens, needed, context, scheme):
            let what = scheme == .dsconvert ? "one window of \(context) tokens and the token after it"
                                            : "two chunks of \(context) tokens (llama.cpp's rule)"
            return "the text is \(tokens) tokens; \(what) need \(needed): give a longer text or a smaller --ctx"
        case let .invalidItem(_, line, m): return "line \(line): \(m)"
        case let .tokenizerMismatch(m): return m
        case let .input(_, m): return m
        }
    }
}
