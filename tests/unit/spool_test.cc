#include "node/spool/spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <utime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/spool/group_commit.h"

namespace zm::spool {
namespace {

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm-spool-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    spool_ = std::make_unique<Spool>(root_, "t1");
    ASSERT_TRUE(spool_->CreateLayout().ok());
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::string root_;
  std::unique_ptr<Spool> spool_;
};

TEST_F(SpoolTest, CommitMovesACompleteFileIntoRouter) {
  mail::Envelope env;
  env.sender = "a@example.org";
  env.recipients.push_back({"b@example.net", "", ""});
  auto sub = spool_->Begin(env);
  ASSERT_TRUE(sub.ok()) << sub.status();
  std::string id = (*sub)->queue_id();
  EXPECT_TRUE(fs::Exists(spool_->StagingPath(kPublic, id)));
  ASSERT_TRUE((*sub)->Append("Subject: x\n\n").ok());
  std::string big(200000, 'y');
  ASSERT_TRUE((*sub)->Append(big).ok());
  ASSERT_TRUE((*sub)->Commit().ok());
  EXPECT_FALSE(fs::Exists(spool_->StagingPath(kPublic, id)));
  auto data = fs::ReadFile(spool_->Path(kRouter, id));
  ASSERT_TRUE(data.ok());
  auto mf = mail::ParseMessageFile(*data);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.queue_id, id);
  EXPECT_EQ(mf->envelope.size, 12 + big.size());
  EXPECT_EQ(mf->envelope.recipients[0].address, "b@example.net");
}

TEST_F(SpoolTest, PrependedLinesTopTheMessageAndCountInItsSize) {
  mail::Envelope env;
  env.sender = "a@example.org";
  env.recipients.push_back({"b@example.net", "", ""});
  auto sub = spool_->Begin(env);
  ASSERT_TRUE(sub.ok()) << sub.status();
  std::string id = (*sub)->queue_id();
  EXPECT_FALSE((*sub)->PrependToMessage("X-Early: 1\n").ok());
  std::string body = "Subject: x\n\n" + std::string(100000, 'y') + "\n";
  ASSERT_TRUE((*sub)->Append(body).ok());
  ASSERT_TRUE((*sub)->Prepare(/*sync=*/false).ok());
  ASSERT_TRUE((*sub)->PrependToMessage("X-A: 1\nX-B: 2\n").ok());
  ASSERT_TRUE((*sub)->Commit().ok());
  auto data = fs::ReadFile(spool_->Path(kRouter, id));
  ASSERT_TRUE(data.ok());
  auto mf = mail::ParseMessageFile(*data);
  ASSERT_TRUE(mf.ok()) << mf.status();
  EXPECT_EQ(mf->envelope.size, body.size() + 14);
  EXPECT_EQ(data->substr(mf->body_offset), "X-A: 1\nX-B: 2\n" + body);
}

TEST_F(SpoolTest, AbandonedSubmissionLeavesNothing) {
  std::string id;
  {
    auto sub = spool_->Begin(mail::Envelope{});
    ASSERT_TRUE(sub.ok());
    id = (*sub)->queue_id();
    ASSERT_TRUE((*sub)->Append("partial").ok());
  }
  EXPECT_FALSE(fs::Exists(spool_->StagingPath(kPublic, id)));
  EXPECT_FALSE(fs::Exists(spool_->Path(kRouter, id)));
}

TEST_F(SpoolTest, RecoveryRemovesOnlyDeadWritersFiles) {
  // A dead writer's file: old and unlocked; and one a release before the
  // hashed subfolders left at the top of public/.
  std::string dead = spool_->StagingPath(kPublic, "dead");
  std::string dead_dir = dead.substr(0, dead.rfind('/'));
  ASSERT_TRUE(fs::WriteFileAtomically(dead_dir, "dead", "x").ok());
  ASSERT_TRUE(fs::WriteFileAtomically(spool_->Path(kPublic), "flat", "x").ok());
  struct utimbuf old = {1000, 1000};
  ASSERT_EQ(::utime(dead.c_str(), &old), 0);
  ASSERT_EQ(::utime(spool_->Path(kPublic, "flat").c_str(), &old), 0);
  // A live writer's file: locked by an open Submission, also made old.
  auto live = spool_->Begin(mail::Envelope{});
  ASSERT_TRUE(live.ok());
  std::string live_path = (*live)->path();
  ASSERT_EQ(::utime(live_path.c_str(), &old), 0);

  auto removed = spool_->RemoveAbandonedTemporaries(60);
  ASSERT_TRUE(removed.ok());
  std::sort(removed->begin(), removed->end());
  std::string bucket = dead_dir.substr(dead_dir.rfind('/') + 1);
  EXPECT_EQ(*removed, (std::vector<std::string>{bucket + "/dead", "flat"}));
  EXPECT_FALSE(fs::Exists(dead));
  EXPECT_TRUE(fs::Exists(live_path));
}

TEST_F(SpoolTest, SubmissionsAreSpreadOverTheStagingSubfolders) {
  std::set<std::string> folders;
  std::vector<std::unique_ptr<Submission>> subs;
  for (int i = 0; i < 64; ++i) {
    auto sub = spool_->Begin(mail::Envelope{});
    ASSERT_TRUE(sub.ok()) << sub.status();
    const std::string& path = (*sub)->path();
    ASSERT_EQ(path, spool_->StagingPath(kPublic, (*sub)->queue_id()));
    std::string dir = path.substr(0, path.rfind('/'));
    ASSERT_EQ(dir.substr(0, dir.rfind('/')), spool_->Path(kPublic)) << path;
    folders.insert(dir);
    subs.push_back(std::move(*sub));
  }
  EXPECT_GE(folders.size(), static_cast<size_t>(kStagingFanout / 2));
  auto listed = spool_->ListStaged(kPublic);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), subs.size());
  EXPECT_EQ(spool_->Counts()[0],
            (std::pair<std::string, size_t>{"public", 64}));
}

TEST_F(SpoolTest, AnOldFlatLayoutGetsItsSubfoldersBack) {
  // A spool laid out before the hashing: public/ and tmp/ without
  // subfolders. Begin() lays them out rather than failing.
  for (auto folder : kStagingFolders) {
    std::filesystem::remove_all(spool_->Path(folder));
    ASSERT_TRUE(fs::MakeDirs(spool_->Path(folder), 0750).ok());
  }
  auto sub = spool_->Begin(mail::Envelope{});
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE((*sub)->Commit().ok());
  EXPECT_TRUE(fs::Exists(spool_->Path(kRouter, (*sub)->queue_id())));
  auto tmp = fs::ListDir(spool_->Path(kTmp));
  ASSERT_TRUE(tmp.ok());
  EXPECT_EQ(tmp->size(), static_cast<size_t>(kStagingFanout));
}

// Where the file system has ext4's TOPDIR flag (the tests' /tmp on ext4),
// the layout sets it on each staging folder, before their subfolders.
TEST_F(SpoolTest, StagingFoldersAskForSpreadSubfolders) {
  fs::UniqueFd fd(::open(spool_->Path(kPublic).c_str(),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  int flags = 0;
  if (::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) {
    GTEST_SKIP() << "no inode flags on this file system";
  }
  struct statfs sfs;
  ASSERT_EQ(::fstatfs(fd.get(), &sfs), 0);
  if (sfs.f_type != EXT4_SUPER_MAGIC) GTEST_SKIP() << "not ext4";
  EXPECT_NE(flags & FS_TOPDIR_FL, 0);
  fs::UniqueFd router(::open(spool_->Path(kRouter).c_str(),
                             O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_EQ(::ioctl(router.get(), FS_IOC_GETFLAGS, &flags), 0);
  EXPECT_EQ(flags & FS_TOPDIR_FL, 0);
}

TEST_F(SpoolTest, QuarantineKeepsTheFileUnderACause) {
  ASSERT_TRUE(fs::WriteFileAtomically(spool_->Path(kRouter), "junk", "x").ok());
  ASSERT_TRUE(spool_->Quarantine(kRouter, "junk", "malformed").ok());
  EXPECT_TRUE(fs::Exists(spool_->Path(kPostman, "junk.malformed")));
  ASSERT_TRUE(fs::WriteFileAtomically(spool_->Path(kRouter), "junk", "y").ok());
  ASSERT_TRUE(spool_->Quarantine(kRouter, "junk", "malformed").ok());
  EXPECT_TRUE(fs::Exists(spool_->Path(kPostman, "junk.malformed.1")));
}

// cachestat(2) (Linux 6.5): how many of a file's cached pages are dirty or
// under writeback. Debian 12's headers predate it.
struct PageCounts {
  uint64_t cached, dirty, writeback, evicted, recently_evicted;
};
bool CountPages(int fd, PageCounts* out) {
  struct {
    uint64_t off, len;
  } range{0, 0};
  return ::syscall(451, fd, &range, out, 0) == 0;
}

TEST_F(SpoolTest, WriteOutPutsEveryPageOnTheDevice) {
  auto sub = spool_->Begin(mail::Envelope{});
  ASSERT_TRUE(sub.ok());
  EXPECT_FALSE((*sub)->AwaitWriteOut().ok()) << "before Prepare()";
  ASSERT_TRUE((*sub)->Append(std::string(300000, 'w')).ok());
  ASSERT_TRUE((*sub)->Prepare(/*sync=*/false).ok());
  // A second descriptor to watch the same pages through.
  fs::UniqueFd watch(::open((*sub)->path().c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(watch.valid());
  PageCounts before{};
  if (!CountPages(watch.get(), &before)) GTEST_SKIP() << "no cachestat(2)";
  if (before.dirty == 0) GTEST_SKIP() << "no writeback on this file system";
  (*sub)->StartWriteOut();
  ASSERT_TRUE((*sub)->AwaitWriteOut().ok());
  PageCounts after{};
  ASSERT_TRUE(CountPages(watch.get(), &after));
  EXPECT_GE(after.cached, before.dirty);
  EXPECT_EQ(after.dirty, 0u);
  EXPECT_EQ(after.writeback, 0u);
}

// A file system of `kind` made for the test and mounted on a folder of
// its own; ok() is false where that cannot be done (not root, no loop
// device, no mkfs), and the test then skips.
class ScratchMount {
 public:
  // kind: "tmpfs", or a mkfs program with its options ("mkfs.ext4 -O
  // ^has_journal").
  explicit ScratchMount(const std::string& kind) {
    char tmpl[] = "/tmp/zm-mount-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    mnt_ = dir_ + "/mnt";
    std::filesystem::create_directory(mnt_);
    std::string cmd;
    if (kind == "tmpfs") {
      cmd = StrCat("mount -t tmpfs -o size=16m tmpfs ", mnt_);
    } else {
      std::string image = dir_ + "/image";
      cmd = StrCat("truncate -s 64M ", image, " && ", kind, " -q -F ", image,
                   " && mount -o loop ", image, " ", mnt_);
    }
    mounted_ = ::geteuid() == 0 &&
               std::system(StrCat("(", cmd, ") >/dev/null 2>&1").c_str()) == 0;
  }
  ~ScratchMount() {
    if (mounted_) std::system(StrCat("umount ", mnt_).c_str());
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  bool ok() const { return mounted_; }
  const std::string& path() const { return mnt_; }

 private:
  std::string dir_, mnt_;
  bool mounted_ = false;
};

TEST(BatchFlushTest, TheFolderAloneOnlyWhereAJournalCarriesTheRest) {
  struct Case {
    const char* kind;
    BatchFlush want;
  } cases[] = {
      {"mkfs.ext4", BatchFlush::kFolder},
      {"mkfs.ext4 -O ^has_journal", BatchFlush::kSyncFs},
      {"mkfs.ext2", BatchFlush::kSyncFs},
      {"tmpfs", BatchFlush::kSyncFs},
  };
  for (const Case& c : cases) {
    ScratchMount m(c.kind);
    if (!m.ok()) GTEST_SKIP() << "cannot mount " << c.kind << " here";
    EXPECT_EQ(BatchFlushName(BatchFlushFor(m.path())), BatchFlushName(c.want))
        << c.kind;
    // The committer on such a spool still lands every message.
    Spool spool(m.path(), "t1");
    ASSERT_TRUE(spool.CreateLayout().ok());
    GroupCommitter committer(spool);
    EXPECT_EQ(committer.flush(), c.want);
    auto sub = spool.Begin(mail::Envelope{});
    ASSERT_TRUE(sub.ok());
    std::string id = (*sub)->queue_id();
    std::promise<absl::Status> p;
    committer.Submit(
        std::shared_ptr<Submission>(std::move(*sub)),
        [&p](absl::Status s) { p.set_value(s); }, "Subject: s\n\nbody\n");
    ASSERT_TRUE(p.get_future().get().ok()) << c.kind;
    auto data = fs::ReadFile(spool.Path(kRouter, id));
    ASSERT_TRUE(data.ok()) << c.kind;
    EXPECT_TRUE(mail::ParseMessageFile(*data).ok()) << c.kind;
  }
  EXPECT_EQ(BatchFlushFor("/nonexistent/zm"), BatchFlush::kSyncFs);
}

TEST_F(SpoolTest, GroupCommitLandsEveryMessageWhole) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::vector<std::string> ids;
  std::mutex ids_mu;
  std::vector<std::future<absl::Status>> results;
  {
    GroupCommitter committer(*spool_);
    std::vector<std::thread> threads;
    std::mutex results_mu;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          mail::Envelope env;
          env.sender = "a@example.org";
          env.recipients.push_back({"b@example.net", "", ""});
          auto sub = spool_->Begin(env);
          ASSERT_TRUE(sub.ok()) << sub.status();
          std::string body = "Subject: " + std::to_string(t) + "/" +
                             std::to_string(i) + "\n\nbody\n";
          ASSERT_TRUE((*sub)->Append(body).ok());
          {
            std::lock_guard<std::mutex> lock(ids_mu);
            ids.push_back((*sub)->queue_id());
          }
          auto promise = std::make_shared<std::promise<absl::Status>>();
          {
            std::lock_guard<std::mutex> lock(results_mu);
            results.push_back(promise->get_future());
          }
          committer.Submit(
              std::shared_ptr<Submission>(std::move(*sub)),
              [promise](absl::Status s) { promise->set_value(s); });
        }
      });
    }
    for (auto& th : threads) th.join();
    for (auto& f : results) EXPECT_TRUE(f.get().ok());
    EXPECT_EQ(committer.messages(), uint64_t{kThreads * kPerThread});
    EXPECT_LE(committer.batches(), committer.messages());
  }
  ASSERT_EQ(ids.size(), size_t{kThreads * kPerThread});
  for (const auto& id : ids) {
    auto data = fs::ReadFile(spool_->Path(kRouter, id));
    ASSERT_TRUE(data.ok()) << id;
    auto mf = mail::ParseMessageFile(*data);
    ASSERT_TRUE(mf.ok()) << mf.status();
    EXPECT_EQ(data->substr(mf->body_offset).find("Subject: "), 0u);
  }
  auto left = spool_->ListStaged(kPublic);
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
}

TEST_F(SpoolTest, GroupCommitAppendsTheTailBeforeTheFlush) {
  auto sub = spool_->Begin(mail::Envelope{});
  ASSERT_TRUE(sub.ok());
  std::string id = (*sub)->queue_id();
  ASSERT_TRUE((*sub)->Append("Subject: t\n\nfirst part\n").ok());
  std::promise<absl::Status> p;
  {
    GroupCommitter committer(*spool_);
    committer.Submit(
        std::shared_ptr<Submission>(std::move(*sub)),
        [&p](absl::Status s) { p.set_value(s); }, "the last bytes\n");
    ASSERT_TRUE(p.get_future().get().ok());
  }
  auto data = fs::ReadFile(spool_->Path(kRouter, id));
  ASSERT_TRUE(data.ok()) << id;
  auto mf = mail::ParseMessageFile(*data);
  ASSERT_TRUE(mf.ok()) << mf.status();
  std::string body = data->substr(mf->body_offset);
  EXPECT_EQ(body, "Subject: t\n\nfirst part\nthe last bytes\n");
  EXPECT_EQ(mf->envelope.size, body.size());
}

TEST_F(SpoolTest, GroupCommitReportsAFailureAndLeavesNothing) {
  GroupCommitter committer(*spool_);
  auto sub = spool_->Begin(mail::Envelope{});
  ASSERT_TRUE(sub.ok());
  std::string id = (*sub)->queue_id();
  ASSERT_TRUE((*sub)->Append("x\n").ok());
  // router/ is gone: the rename cannot happen, the client must be told.
  std::filesystem::remove_all(spool_->Path(kRouter));
  std::promise<absl::Status> p;
  committer.Submit(std::shared_ptr<Submission>(std::move(*sub)),
                   [&p](absl::Status s) { p.set_value(s); });
  EXPECT_FALSE(p.get_future().get().ok());
  EXPECT_FALSE(fs::Exists(spool_->StagingPath(kPublic, id)));
}

TEST_F(SpoolTest, GroupCommitterStoppingCommitsEverythingQueued) {
  constexpr int kMessages = 40;
  std::vector<std::string> ids;
  std::atomic<int> ok{0};
  std::atomic<int> reported{0};
  {
    GroupCommitter committer(*spool_, /*max_batch=*/3);
    for (int i = 0; i < kMessages; ++i) {
      auto sub = spool_->Begin(mail::Envelope{});
      ASSERT_TRUE(sub.ok());
      ids.push_back((*sub)->queue_id());
      ASSERT_TRUE((*sub)->Append(StrCat("Subject: ", i, "\n\nbody\n")).ok());
      committer.Submit(std::shared_ptr<Submission>(std::move(*sub)),
                       [&](absl::Status s) {
                         ok += s.ok() ? 1 : 0;
                         ++reported;
                       });
    }
  }  // both stages drain before the destructor returns
  EXPECT_EQ(reported.load(), kMessages);
  EXPECT_EQ(ok.load(), kMessages);
  for (const auto& id : ids) {
    EXPECT_TRUE(fs::Exists(spool_->Path(kRouter, id))) << id;
    EXPECT_FALSE(fs::Exists(spool_->StagingPath(kPublic, id))) << id;
  }
}

TEST_F(SpoolTest, SyncFilesDataFlushesEveryFileAndReportsAFailure) {
  std::vector<fs::UniqueFd> files;
  std::vector<int> fds;
  for (int i = 0; i < 7; ++i) {
    std::string path = StrCat(root_, "/f", i);
    files.emplace_back(::open(path.c_str(), O_WRONLY | O_CREAT, 0600));
    ASSERT_TRUE(files.back().valid());
    ASSERT_TRUE(fs::WriteAll(files.back().get(), "data\n", path).ok());
    fds.push_back(files.back().get());
  }
  EXPECT_TRUE(SyncFilesData(fds).ok());
  EXPECT_TRUE(SyncFilesData(fds, 1).ok());
  EXPECT_TRUE(SyncFilesData({}).ok());
  // One descriptor that is not a file among good ones: the batch fails.
  fds.insert(fds.begin() + 3, -1);
  absl::Status s = SyncFilesData(fds);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fdatasync"), std::string::npos) << s;
}

}  // namespace
}  // namespace zm::spool
