//! The ipvsadm rule language and the rule-set model.
