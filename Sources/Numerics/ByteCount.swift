/// `12.4 MB` style (decimal units, as `ls -h --si` and Hugging Face show sizes): how every
/// dsconvert command and benchmark prints a byte count. Three significant digits (`%.2f` below
/// 10, `%.1f` below 100, `%.0f` above), rounded half away from zero.
public func formatBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"]
    var v = Double(n)
    var i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    if i == 0 { return "\(n) B" }
    let decimals = v >= 100 ? 0 : v >= 10 ? 1 : 2
    let scale = decimals == 0 ? 1 : decimals == 1 ? 10 : 100
    let fixed = Int((v * Double(scale)).rounded())
    let whole = fixed / scale, fraction = fixed % scale
    let f = String(fraction)
    let digits = decimals == 0 ? "" : "." + String(repeating: "0", count: decimals - f.count) + f
    return "\(whole)\(digits) \(units[i])"
}
