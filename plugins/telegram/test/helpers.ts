/** The connector's surroundings in tests come from @kitbridge/testkit, shared by every plugin. */
export { agentMessage, FileServer, TestContext, TestDelivery, webhookHost } from '@kitbridge/testkit';
