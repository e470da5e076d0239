import EventLog
import Foundation
import Projections
import SwitchboardEvents
import Testing
import Workers

/// Payloads shaped like the providers' public documentation (core.telegram.org/bots/api#update and the examples
/// client libraries copy from it; Meta's WhatsApp Cloud API webhook reference pages), decoded and mapped.
@Suite("Channel payload corpus")
struct ChannelPayloadCorpusTests {
    // MARK: Telegram

    static let telegram: [(name: String, json: String, expect: String)] = [
        (
            "private text with a bot command entity",
            #"""
            {"update_id":872165001,"message":{"message_id":1365,"from":{"id":1111111,"is_bot":false,"first_name":"Alice","last_name":"Tester","username":"alice","language_code":"en"},"chat":{"id":1111111,"first_name":"Alice","last_name":"Tester","username":"alice","type":"private"},"date":1700000000,"text":"/start hello","entities":[{"offset":0,"length":6,"type":"bot_command"}]}}
            """#,
            "message 1111111:1365 /start hello"
        ),
        (
            "group text replying to a message",
            #"""
            {"update_id":872165002,"message":{"message_id":44,"from":{"id":2222,"is_bot":false,"first_name":"Bob"},"chat":{"id":-4000000001,"title":"Family","type":"group","all_members_are_administrators":true},"date":1700000010,"reply_to_message":{"message_id":40,"from":{"id":777000111,"is_bot":true,"first_name":"Switchboard","username":"switchboard_test_bot"},"chat":{"id":-4000000001,"title":"Family","type":"group"},"date":1700000000,"text":"earlier"},"text":"and this?"}}
            """#,
            "message -4000000001:44 and this? reply -4000000001:40"
        ),
        (
            "edited message",
            #"""
            {"update_id":872165003,"edited_message":{"message_id":1365,"from":{"id":1111111,"is_bot":false,"first_name":"Alice"},"chat":{"id":1111111,"first_name":"Alice","type":"private"},"date":1700000000,"edit_date":1700000050,"text":"/start hello again"}}
            """#,
            "message 1111111:1365:edit:1700000050 /start hello again reply 1111111:1365"
        ),
        (
            "channel post",
            #"""
            {"update_id":872165004,"channel_post":{"message_id":12,"sender_chat":{"id":-1001500000000,"title":"Announcements","type":"channel"},"chat":{"id":-1001500000000,"title":"Announcements","type":"channel"},"date":1700000100,"text":"New release"}}
            """#,
            "message -1001500000000:12 New release"
        ),
        (
            "voice note with caption",
            #"""
            {"update_id":872165005,"message":{"message_id":1366,"from":{"id":1111111,"is_bot":false,"first_name":"Alice"},"chat":{"id":1111111,"type":"private"},"date":1700000200,"voice":{"duration":3,"mime_type":"audio/ogg","file_id":"AwACAgQAAxkBAAIBVmV","file_unique_id":"AgADBQA","file_size":9000},"caption":"listen"}}
            """#,
            "message 1111111:1366 listen media audio audio/ogg AwACAgQAAxkBAAIBVmV"
        ),
        (
            "photo without caption",
            #"""
            {"update_id":872165006,"message":{"message_id":1367,"from":{"id":1111111,"is_bot":false,"first_name":"Alice"},"chat":{"id":1111111,"type":"private"},"date":1700000300,"photo":[{"file_id":"AgACAgQ-small","file_unique_id":"s","file_size":1500,"width":90,"height":67},{"file_id":"AgACAgQ-large","file_unique_id":"l","file_size":60000,"width":1280,"height":960}]}}
            """#,
            "ignored 1111111:1367 message no_text"
        ),
        (
            "callback query",
            #"""
            {"update_id":872165007,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"id":1111111,"is_bot":false,"first_name":"Alice"},"message":{"message_id":50,"from":{"id":777000111,"is_bot":true,"first_name":"Switchboard"},"chat":{"id":1111111,"type":"private"},"date":1700000000,"text":"Approve?"},"chat_instance":"-1234567890","data":"approve:abc"}}
            """#,
            "ignored update:872165007 callback_query unsupported_kind"
        ),
        (
            "the bot added to a group",
            #"""
            {"update_id":872165008,"my_chat_member":{"chat":{"id":-4000000001,"title":"Family","type":"group"},"from":{"id":2222,"is_bot":false,"first_name":"Bob"},"date":1700000400,"old_chat_member":{"user":{"id":777000111,"is_bot":true,"first_name":"Switchboard"},"status":"left"},"new_chat_member":{"user":{"id":777000111,"is_bot":true,"first_name":"Switchboard"},"status":"member"}}}
            """#,
            "ignored update:872165008 my_chat_member unsupported_kind"
        ),
        (
            "group migrated to a supergroup (service message in the old group)",
            #"""
            {"update_id":872165009,"message":{"message_id":60,"from":{"id":2222,"is_bot":false,"first_name":"Bob"},"chat":{"id":-4000000001,"title":"Family","type":"group"},"date":1700000500,"migrate_to_chat_id":-1001999999999}}
            """#,
            "ignored -4000000001:60 message service_message migrate -4000000001 -> -1001999999999"
        ),
        (
            "a message whose chat is missing",
            #"""
            {"update_id":872165010,"message":{"message_id":61,"date":1700000600,"text":"no chat"}}
            """#,
            "ignored update:872165010 message malformed (message.chat: missing)"
        ),
    ]

    static func describe(_ item: IngressItem?, _ migration: (from: Int64, to: Int64)?) -> String {
        var text: String
        switch item {
        case .message(let message, _, _)?:
            text = "message \(message.externalID) \(message.text)"
            if let reply = message.replyToExternalID { text += " reply \(reply)" }
            if let media = message.media { text += " media \(media.kind) \(media.mimeType) \(media.providerMediaID)" }
        case .ignored(let ignored)?:
            text = "ignored \(ignored.externalID) \(ignored.kind) \(ignored.reason)"
            if let detail = ignored.detail { text += " (\(detail))" }
        case .status(let status)?:
            text = "status \(status.providerMessageID) \(status.status) \(status.errorCode ?? "-")"
        case nil:
            text = "nothing"
        }
        if let migration { text += " migrate \(migration.from) -> \(migration.to)" }
        return text
    }

    @Test(arguments: telegram.map { ($0.name, $0.json, $0.expect) })
    func aTelegramUpdateFromTheDocsIsRead(name: String, json: String, expect: String) throws {
        let update = try JSONDecoder().decode(TelegramUpdate.self, from: Data(json.utf8))
        let inbound = TelegramInbound(
            accountID: "default", access: ChannelAccess(channel: "telegram", policy: .open), chats: TelegramChats())
        let (item, migration) = inbound.item(for: update)
        #expect(Self.describe(item, migration) == expect, "\(name)")
    }

    @Test func aMigratedGroupKeepsItsConversationAndSendsGoToTheNewID() async throws {
        let chats = TelegramChats()
        await chats.migrated(from: -4_000_000_001, to: -1_001_999_999_999)
        let inbound = TelegramInbound(
            accountID: "default", access: ChannelAccess(channel: "telegram", policy: .open), chats: chats)
        let json = #"""
            {"update_id":9,"message":{"message_id":1,"from":{"id":2222,"is_bot":false,"first_name":"Bob"},"chat":{"id":-1001999999999,"title":"Family","type":"supergroup"},"date":1700000600,"migrate_from_chat_id":-4000000001}}
            """#
        let (first, migration) = inbound.item(for: try JSONDecoder().decode(TelegramUpdate.self, from: Data(json.utf8)))
        #expect(migration?.from == -4_000_000_001 && migration?.to == -1_001_999_999_999)
        guard case .ignored(let ignored)? = first else {
            Issue.record("the migration service message is not a message")
            return
        }
        #expect(ignored.contactID == "-4000000001")
        let text = #"""
            {"update_id":10,"message":{"message_id":2,"from":{"id":2222,"is_bot":false,"first_name":"Bob"},"chat":{"id":-1001999999999,"title":"Family","type":"supergroup"},"date":1700000700,"text":"still us"}}
            """#
        let (item, _) = inbound.item(for: try JSONDecoder().decode(TelegramUpdate.self, from: Data(text.utf8)))
        guard case .message(let message, _, _)? = item else {
            Issue.record("a text in the supergroup is a message")
            return
        }
        #expect(message.contactID == "-4000000001")
        #expect(message.externalID == "-1001999999999:2")
        #expect(chats.current(of: -4_000_000_001) == -1_001_999_999_999)
    }

    // MARK: WhatsApp

    static func notification(_ value: String, phoneNumberID: String = "106540352242922") -> String {
        #"""
        {"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"\#(phoneNumberID)"},\#(value)},"field":"messages"}]}]}
        """#
    }

    static let contacts = #""contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}]"#

    static let whatsapp: [(name: String, value: String, expect: [String])] = [
        (
            "text",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]"#,
            ["message wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA= Does it come in another color?"]
        ),
        (
            "image with caption",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.IMG1","timestamp":"1750090702","type":"image","image":{"caption":"This is a caption","mime_type":"image/jpeg","sha256":"8UFxd0mJW3WRLfN3Z8Ch/yEIpjcCHFnJSw1Wxw9GZBU=","id":"1003383421387256"}}]"#,
            ["message wamid.IMG1 This is a caption media image image/jpeg 1003383421387256"]
        ),
        (
            "voice note",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.AUD1","timestamp":"1750090702","type":"audio","audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"x","id":"2003383421387256","voice":true}}]"#,
            ["message wamid.AUD1 [Audio message] media audio audio/ogg; codecs=opus 2003383421387256"]
        ),
        (
            "reply button",
            contacts
                + #","messages":[{"context":{"from":"15550783881","id":"wamid.CTX1"},"from":"16505551234","id":"wamid.BTN1","timestamp":"1750090702","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"cancel-button","title":"Cancel"}}}]"#,
            ["message wamid.BTN1 cancel-button reply wamid.CTX1"]
        ),
        (
            "list reply",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.LST1","timestamp":"1750090702","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"priority_express","title":"Express Shipping","description":"Next Day to 2 Days"}}}]"#,
            ["message wamid.LST1 priority_express"]
        ),
        (
            "template quick-reply button",
            contacts
                + #","messages":[{"context":{"from":"15550783881","id":"wamid.TPL1"},"from":"16505551234","id":"wamid.QRB1","timestamp":"1750090702","type":"button","button":{"payload":"Unsubscribe from Promos","text":"Unsubscribe from Promos"}}]"#,
            ["message wamid.QRB1 Unsubscribe from Promos reply wamid.TPL1"]
        ),
        (
            "reaction",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.RCT1","timestamp":"1750090702","type":"reaction","reaction":{"message_id":"wamid.OUT1","emoji":"\uD83D\uDE00"}}]"#,
            ["ignored wamid.RCT1 reaction unsupported_kind"]
        ),
        (
            "location",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.LOC1","timestamp":"1750090702","type":"location","location":{"address":"1 Hacker Way, Menlo Park, CA 94025","latitude":37.483872693672,"longitude":-122.14900441942,"name":"Meta Headquarters","url":"https://meta.com"}}]"#,
            ["ignored wamid.LOC1 location unsupported_kind"]
        ),
        (
            "unsupported type",
            contacts
                + #","messages":[{"from":"16505551234","id":"wamid.UNS1","timestamp":"1750090702","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown","message":"Message type unknown","error_data":{"details":"Message type is currently not supported."}}]}]"#,
            ["ignored wamid.UNS1 unsupported unsupported_kind"]
        ),
        (
            "sent status with pricing",
            #""statuses":[{"id":"wamid.OUT1","status":"sent","timestamp":"1750263773","recipient_id":"16505551234","conversation":{"id":"6ceb9d929c1e9d2a44d8aa6e9e4a6ec0","expiration_timestamp":"1750350180","origin":{"type":"service"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"service","type":"regular"}}]"#,
            ["status wamid.OUT1 sent -"]
        ),
        (
            "read before delivered, in one notification",
            #""statuses":[{"id":"wamid.OUT2","status":"read","timestamp":"1750263790","recipient_id":"16505551234"},{"id":"wamid.OUT2","status":"delivered","timestamp":"1750263780","recipient_id":"16505551234"}]"#,
            ["status wamid.OUT2 read -", "status wamid.OUT2 delivered -"]
        ),
        (
            "failed status (24 h window)",
            #""statuses":[{"id":"wamid.OUT3","status":"failed","timestamp":"1750263773","recipient_id":"16505551234","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}]"#,
            ["status wamid.OUT3 failed 131047"]
        ),
        (
            "errors only",
            #""errors":[{"code":130501,"title":"Message failed to send because there were one or more errors related to your payment method.","message":"x","error_data":{"details":"y"}}]"#,
            []
        ),
    ]

    @Test(arguments: whatsapp.map { ($0.name, $0.value, $0.expect) })
    func aWhatsAppNotificationFromTheDocsIsRead(name: String, value: String, expect: [String]) throws {
        let notification = try WhatsAppNotification(json: Array(Self.notification(value).utf8))
        let inbound = WhatsAppInbound(
            accountID: "default", phoneNumberID: "106540352242922",
            access: ChannelAccess(channel: "whatsapp", policy: .open))
        #expect(inbound.items(notification).map { Self.describe($0, nil) } == expect, "\(name)")
    }

    @Test func aNotificationForAnotherNumberIsRecordedAsIgnoredAndItsStatusesSkipped() throws {
        let value =
            Self.contacts
            + #","messages":[{"from":"16505551234","id":"wamid.OTHER","timestamp":"1","type":"text","text":{"body":"hi"}}],"statuses":[{"id":"wamid.X","status":"read","timestamp":"1","recipient_id":"1"}]"#
        let notification = try WhatsAppNotification(json: Array(Self.notification(value, phoneNumberID: "999").utf8))
        let inbound = WhatsAppInbound(
            accountID: "default", phoneNumberID: "106540352242922",
            access: ChannelAccess(channel: "whatsapp", policy: .open))
        #expect(
            inbound.items(notification).map { Self.describe($0, nil) } == [
                "ignored wamid.OTHER text other_phone_number"
            ])
        let other = try WhatsAppNotification(json: Array(#"{"object":"page","entry":[]}"#.utf8))
        #expect(inbound.items(other).isEmpty)
    }
}
