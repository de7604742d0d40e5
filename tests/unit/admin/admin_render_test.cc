#include "node/admin/admin_render.h"

#include <gtest/gtest.h>

#include "node/admin/scheduler_auth.h"

namespace zm::admin {
namespace {

TEST(AdminProofTest, IsHmacSha256OverUserNonceAndMethod) {
  // python3: hmac.new(b"secret", b"zmnode-admin-v1\nroot\nabc123\n"
  //   b"/zmnode.admin.v1.SchedulerAdmin/KillMessage", hashlib.sha256)
  std::string p = AdminProof("secret", "root", "abc123",
                             "/zmnode.admin.v1.SchedulerAdmin/KillMessage");
  EXPECT_EQ(p,
            "38e72a37a2e972d76a657cfe7f58ef2aafae0ff84b19daec83a16392f8d3886b");
  EXPECT_NE(p, AdminProof("secret", "root", "abc124",
                          "/zmnode.admin.v1.SchedulerAdmin/KillMessage"));
  EXPECT_NE(p, AdminProof("secret", "root", "abc123",
                          "/zmnode.admin.v1.SchedulerAdmin/Etrn"));
  EXPECT_TRUE(ProofEquals(p, p));
  EXPECT_FALSE(ProofEquals(p, p.substr(1)));
  EXPECT_FALSE(ProofEquals(p, std::string(p.size(), '0')));
}

TEST(AdminRenderTest, QueueLines) {
  pb::QueueThreads q;
  pb::Ring* r = q.add_rings();
  r->set_name("smtp/*");
  r->set_procs(2);
  r->set_idle(1);
  r->set_messages(3);
  r->set_plim(20);
  r->set_flim(10);
  r->set_tlim(100);
  pb::Thread* t = r->add_threads();
  t->set_channel("smtp");
  t->set_host("x.example");
  t->set_procs(2);
  t->set_recipients(4);
  t->set_attempts(3);
  t->set_wait_s(90);
  t->set_queueonly(true);
  t->set_age_s(3700);
  pb::QueueSummary* s = q.mutable_summary();
  s->set_kids(2);
  s->set_idle(1);
  s->set_messages(3);
  s->set_threads(1);
  s->set_recipients(4);
  s->set_uptime_s(61);
  s->set_messages_in(10);
  s->set_messages_out(7);
  s->set_recipients_in(12);
  std::vector<std::string> want = {
      "smtp/*/2",
      "smtp/x.example/2            R=4      A=3 W=90s QUEUEONLY QA=1h1m40s",
      "  Threads: 1 Msgs: 3 Procs: 2 Idle: 1 Plim: 20 Flim: 10 Tlim: 100",
      "Kids: 2 Idle: 1 Msgs: 3 Thrs: 1 Rcpnts: 4 Uptime: 1m1s",
      "Msgs in 10 out 7 stored 3 Rcpnts in 12 out 8 stored 4"};
  EXPECT_EQ(QueueThreadsLines(q), want);
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(-5), "0s");
  EXPECT_EQ(FormatDuration(97200), "1d3h");
}

TEST(AdminRenderTest, MessageJsonKeepsTheMailqFormat) {
  pb::MessageEntry m;
  m.set_node("t1");
  m.set_queue_id("A-t1");
  m.set_deferred(true);
  m.set_arrival_time(100);
  m.set_size(42);
  m.set_sender("a@x");
  pb::Recipient* r = m.add_recipients();
  r->set_address("b@y");
  r->set_channel("smtp");
  r->set_host("y");
  r->set_attempts(2);
  r->set_next_attempt(200);
  r->set_expires(300);
  r->set_expires_in_s(50);
  r->set_diagnostic("refused");
  r->set_dsn("4.4.1");
  EXPECT_EQ(
      MessageJson(m),
      R"({"arrival_time":100,"forced_expire":false,"message_size":42,)"
      R"("node":"t1","queue_id":"A-t1","queue_name":"deferred","recipients":)"
      R"([{"address":"b@y","attempts":2,"channel":"smtp","delay_reason":)"
      R"("refused","dsn":"4.4.1","expires":300,"expires_in":50,"host":"y",)"
      R"("next_attempt":200,"state":"waiting"}],"sender":"a@x"})");
  pb::ThreadMessages t;
  pb::ThreadMessage* x = t.add_messages();
  x->set_queue_id("A-t1");
  x->set_sender("<>");
  x->set_expires(300);
  x->set_next_attempt(200);
  x->set_attempts(2);
  x->set_diagnostic("refused");
  EXPECT_EQ(ThreadLines(t),
            std::vector<std::string>{"A-t1\t<>\t300\t200\t2\trefused"});
}

}  // namespace
}  // namespace zm::admin
