#include "util/passwd.hpp"

#include <gtest/gtest.h>

using berth::find_passwd_uid;

TEST(Passwd, FindsByUidAndSkipsJunk) {
  const char* text =
      "root:x:0:0:root:/root:/bin/sh\n"
      "broken line\n"
      "bad:x:notanumber:1:x:/nowhere:/bin/false\n"
      "app:x:1000:1001:app:/home/app:/bin/sh\n"
      "nohome:x:7:7:::/bin/false";
  auto root = find_passwd_uid(text, 0);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->name, "root");
  EXPECT_EQ(root->home, "/root");
  auto app = find_passwd_uid(text, 1000);
  ASSERT_TRUE(app);
  EXPECT_EQ(app->name, "app");
  EXPECT_EQ(app->gid, 1001u);
  EXPECT_EQ(app->home, "/home/app");
  auto nohome = find_passwd_uid(text, 7);
  ASSERT_TRUE(nohome);
  EXPECT_EQ(nohome->home, "");
  EXPECT_FALSE(find_passwd_uid(text, 4242));
  EXPECT_FALSE(find_passwd_uid("", 0));
}
