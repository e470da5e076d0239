import EventLog
import Projections
import Testing

/// The decider suites again with every engine on PostgreSQL (`openEngine` follows `TestBackend.current`): the
/// same commands, the same decisions and events, through the other storage engine. Generated from the suites'
/// unparameterized tests; a test added there is added here by listing it. (`ClaimBacklogTests` stays on LMDB: its
/// backlogs of 100 000 waiting jobs measure LMDB's page layout, and take minutes through a network round trip.)
@Suite("Deciders on PostgreSQL", .serialized, .timeLimit(.minutes(3)))
struct DecidersOnPostgresTests {
    @Test func delivery() async throws {
        try await onPostgres {
            let suite = DeciderDeliveryTests()
            try await suite.enqueueIsIdempotentByKey()
            try await suite.claimWithTheCurrentLeaseTokenGivesAClaimFencedByItsSeq()
            try await suite.claimWithoutTheAccountLeaseIsRejected()
            try await suite.attemptWithTheCurrentTokensIsAccepted()
            try await suite.attemptWithAStaleDeliveryTokenIsRejected()
            try await suite.aBatchClaimTakesOneHeadPerRecipientInOneTransaction()
            try await suite.aNewTenureSettlesAnAttemptedClaimOfTheOldOneInItsOwnTransaction()
            try await suite.attemptUnderALeaseThatExpiredAndWentToAnotherOwnerIsRejected()
            try await suite.sentMarksTheDeliverySent()
            try await suite.permanentFailureFailsTheDeliveryForGood()
            try await suite.deliveryFailsForGoodAfterFiveAttempts()
            try await suite.uncertainDeliveryIsListedAndNeverClaimedAgain()
            try await suite.claimExpiringBeforeAnyAttemptIsPendingAgainAtTheNextClaim()
            try await suite.claimExpiringAfterTheAttemptIsUncertainAndNotResent()
            try await suite.deliveriesToOneRecipientGoOutInOrderWhileOthersProceed()
            try await suite.whatsappSpacesSendsToOneUserBySixSeconds()
            try await suite.telegramGroupGetsAtMostTwentyMessagesPerMinute()
            try await suite.accountWideLimitBlocksAThirdSendWithinTheWindow()
            suite.defaultDeliverySettings()
        }
    }

    @Test func inbound() async throws {
        try await onPostgres {
            let suite = DeciderInboundTests()
            try await suite.sameMessageIngestedTwiceIsADuplicateForever()
            try await suite.twoContactsOfOneAccountGetTwoConversations()
            try await suite.allowlistRecordsAnUnknownSendersMessageWithoutAJob()
            try await suite.blockedContactsMessagesStartNoJob()
            try await suite.pairingAllowsTheContactOnlyWithTheRightCode()
            try await suite.historyReturnsTheConversationsUserMessagesInOrder()
        }
    }

    @Test func job() async throws {
        try await onPostgres {
            let suite = DeciderJobTests()
            try await suite.enqueueWithTheSameIdempotencyKeyReturnsTheFirstJob()
            try await suite.claimTokenIsTheSeqOfJobClaimedWithAttemptOneAndSixtySecondsVisibility()
            try await suite.completeWithTheCurrentTokenCompletesTheJob()
            try await suite.heartbeatWithTheCurrentTokenExtendsTheClaim()
            try await suite.heartbeatAfterTheClaimExpiredIsRejected()
            suite.retryPolicyDefaults()
            try await suite.jobFailingThreeTimesIsDeadListedAndRequeueable()
            try await suite.nonRetryableFailureIsDeadAtOnce()
            try await suite.expiredClaimIsReclaimedByTheNextClaimAndTheOldTokenIsFencedOff()
            try await suite.claimRespectsRunAt()
            try await suite.scheduledJobDoesNotHoldBackJobsThatAreDue()
            try await suite.claimTakesHigherPriorityFirstThenFIFO()
            try await suite.runningJobExcludesOtherJobsOfItsConversationOnly()
            try await suite.childJobIsClaimableWhileItsParentRunsButAnUnrelatedJobIsNot()
            try await suite.jobAndDeliveryRecordsKeepTheirConversationAsCorrelationID()
        }
    }

    @Test func lease() async throws {
        try await onPostgres {
            let suite = DeciderLeaseTests()
            try await suite.acquireOnFreeResourceIsGrantedWithTheSeqOfLeaseAcquiredAsToken()
            try await suite.acquireByThisProcessUsesTheEngineOwner()
            try await suite.secondOwnerIsDeniedAsHeldAndToldTheHolder()
            try await suite.sameOwnerReacquiringKeepsTheTokenAndExtendsTheExpiry()
            try await suite.sameWorkerIDInAnotherInstanceNeitherSharesNorReleasesTheLease()
            try await suite.renewWithTheCurrentTokenExtends()
            try await suite.renewWithAStaleTokenIsDenied()
            try await suite.leaseIsLiveAtExactlyExpiresAtAndExpiredOneMicrosecondLater()
            try await suite.releaseFreesTheLeaseForTheNextAcquirerWithAGreaterToken()
            try suite.defaultLeaseTimingIs45SecondsWith15SecondHeartbeats()
        }
    }

    @Test func turn() async throws {
        try await onPostgres {
            let suite = DeciderTurnTests()
            try await suite.theCurrentClaimStreamsAndFinishesItsReply()
            try await suite.aStaleTokenCannotAddToTheReplyNorCallATool()
            try await suite.eventsOfAnotherJobOrTokenAreRefusedWhole()
            try await suite.anApprovedCallRunsOnceAndItsResultIsRecorded()
            try await suite.anUnansweredApprovalExpiresIntoARecordedRejection()
            try await suite.expiryRecordsEachDueCallOnce()
            try await suite.anApprovalRequestMustNameACallOfTheJob()
            try await suite.conversationsAreListedMostRecentlyActiveFirstAndSummariesKept()
        }
    }

    @Test func conversationControl() async throws {
        try await onPostgres {
            let suite = ConversationControlTests()
            try await suite.stopKeepsTheTextAndFencesTheWriter()
            try await suite.stopAQueuedJobAndRefuseOthers()
            try await suite.regenerateAddsAVersion()
            try await suite.historyFollowsTheBranchAndTheShownVersion()
            try await suite.badPlacesAreRefused()
            try await suite.aLinearChatIsUnchanged()
            try await suite.newStartsTheHistoryAfresh()
            try await suite.rename()
            try await suite.deleteRedacts()
            try await suite.aChannelConversationStartsAfresh()
        }
    }

    @Test func session() async throws {
        try await onPostgres {
            let suite = SessionTests()
            try await suite.aBatchIsOneAtomicCommitInTheLog()
            try await suite.aWrongKeyIsAClearErrorNotGarbage()
        }
    }

    @Test func reminder() async throws {
        try await onPostgres {
            let suite = ReminderTests()
            try suite.remindSchedulesAndRemindersListsAndCancels()
        }
    }
}
