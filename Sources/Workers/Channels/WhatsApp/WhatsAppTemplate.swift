/// The approved message template a text goes out as when the Cloud API refuses free text because the user last
/// wrote more than 24 hours ago (131047) — reminders and scheduled messages, typically (`WHATSAPP_TEMPLATE_NAME`,
/// `WHATSAPP_TEMPLATE_LANGUAGE`). The template must have one body variable, `{{1}}`, which carries the text.
public struct WhatsAppTemplate: Sendable, Equatable {
    public var name: String
    /// The template's language code, e.g. `en_US`.
    public var language: String

    public init(name: String, language: String = "en_US") {
        self.name = name
        self.language = language
    }

    /// The most characters the variable carries; a longer text is cut there with an ellipsis.
    public static let parameterLimit = 1_000

    /// The text as the variable may carry it: Meta refuses a parameter with a line break, a tab or more than four
    /// spaces in a row (132018), so lines are joined with " · " and runs of blanks become one space.
    public static func parameter(_ text: String) -> String {
        let lines = text.split(whereSeparator: \.isNewline).map {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        }.filter { !$0.isEmpty }
        let joined = lines.joined(separator: " · ")
        guard joined.count > parameterLimit else { return joined }
        return String(joined.prefix(parameterLimit - 1)) + "…"
    }

    struct Body: Encodable {
        struct Template: Encodable {
            struct Language: Encodable { var code: String }
            struct Component: Encodable {
                struct Parameter: Encodable {
                    var type = "text"
                    var text: String
                }
                var type = "body"
                var parameters: [Parameter]
            }
            var name: String
            var language: Language
            var components: [Component]
        }
        var messaging_product = "whatsapp"
        var recipient_type = "individual"
        var to: String
        var type = "template"
        var template: Template
    }

    func body(to recipient: String, text: String) -> Body {
        Body(
            to: recipient,
            template: .init(
                name: name, language: .init(code: language),
                components: [.init(parameters: [.init(text: Self.parameter(text))])]))
    }
}
